"""campaign_campaigncalls_add_column_reason

Revision ID: 3f65e7beee68
Revises: 2bbcd3fc6201
Create Date: 2026-12-06 20:00:03.000000

Why each campaigncall ended (the Rust campaign-manager's migrations/20261129140000_campaigncall_reasons.sql):
the hangup reason, `flow_ended`, or the service's own (`not_placed`, ...); at most 64
characters, so the covering index below fits InnoDB's key limit in utf8mb3 and utf8mb4 alike.
The Go service never selects nor writes it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3f65e7beee68'
down_revision = '2bbcd3fc6201'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""alter table campaign_campaigncalls add column reason varchar(64) null;""")
    op.execute("""create index idx_campaign_campaigncalls_campaign_status_reason on campaign_campaigncalls(campaign_id, status, result, reason, tm_delete);""")


def downgrade():
    op.execute("""drop index idx_campaign_campaigncalls_campaign_status_reason on campaign_campaigncalls;""")
    op.execute("""alter table campaign_campaigncalls drop column reason;""")
