"""campaign_dials_add_column_tm_not_found

Revision ID: 8d1e5a7c42b0
Revises: 25d4c601f492
Create Date: 2026-12-07 04:00:00.000000

When the Rust campaign-manager's campaigncall repair first got the peer's typed 404 for a dial
whose create was never answered (migrations/20261207000000_dial_not_found.sql): "never created"
needs a second typed 404 more than the repair's margin later. The Go service never reads it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '8d1e5a7c42b0'
down_revision = '25d4c601f492'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""alter table campaign_dials add column tm_not_found datetime(6) null;""")


def downgrade():
    op.execute("""alter table campaign_dials drop column tm_not_found;""")
