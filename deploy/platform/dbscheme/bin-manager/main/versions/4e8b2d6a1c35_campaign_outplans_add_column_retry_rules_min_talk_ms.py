"""campaign_outplans_add_column_retry_rules_min_talk_ms

Revision ID: 4e8b2d6a1c35
Revises: b5e81f3a6d24
Create Date: 2026-12-07 06:00:00.000000

An outplan's retry rules by hangup reason and its minimum talk time (the Rust
campaign-manager's additions; its migrations/20261207060100_retry_rules.sql): a JSON object and
an integer, NULL when unset. Nullable, and never selected by the Go service, which lists its
columns.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '4e8b2d6a1c35'
down_revision = 'b5e81f3a6d24'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""alter table campaign_outplans add column retry_rules json null;""")
    op.execute("""alter table campaign_outplans add column min_talk_ms integer null;""")


def downgrade():
    op.execute("""alter table campaign_outplans drop column min_talk_ms;""")
    op.execute("""alter table campaign_outplans drop column retry_rules;""")
