"""campaign_campaigns_add_column_calling_hours_pacing

Revision ID: 2bbcd3fc6201
Revises: 3f8dbcf71f9f
Create Date: 2026-12-06 20:00:02.000000

A campaign's calling hours and pacing (the Rust campaign-manager's additions; its
migrations/20261129120100_calling_hours.sql and 20261129130000_pacing.sql): JSON objects, NULL
when unset. Nullable, and never selected by the Go service, which lists its columns.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '2bbcd3fc6201'
down_revision = '3f8dbcf71f9f'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""alter table campaign_campaigns add column calling_hours json null;""")
    op.execute("""alter table campaign_campaigns add column pacing json null;""")


def downgrade():
    op.execute("""alter table campaign_campaigns drop column pacing;""")
    op.execute("""alter table campaign_campaigns drop column calling_hours;""")
