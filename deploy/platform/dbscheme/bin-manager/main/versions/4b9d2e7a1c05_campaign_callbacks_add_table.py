"""campaign_callbacks_add_table

Revision ID: 4b9d2e7a1c05
Revises: 4e8b2d6a1c35
Create Date: 2026-12-07 06:00:00.000000

Callbacks of the Rust campaign-manager (migrations/20261207060200_callbacks.sql): a callee's
"call me at" time for one destination of an outdial target; the Go service never reads it.
The dial's transaction reads it by (campaign, target) and marks the callback's dial in it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '4b9d2e7a1c05'
down_revision = '4e8b2d6a1c35'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_callbacks(
            id                binary(16)  not null,
            customer_id       binary(16)  not null,
            campaign_id       binary(16)  not null,
            outdial_target_id binary(16)  not null,
            destination_index integer     not null,
            tm_due            datetime(6) not null,
            campaigncall_id   binary(16),
            tm_create         datetime(6) not null,

            primary key(id),
            key idx_campaign_callbacks_campaign_target(campaign_id, outdial_target_id),
            key idx_campaign_callbacks_campaign_create(campaign_id, tm_create)
        );
    """)


def downgrade():
    op.execute("""drop table campaign_callbacks;""")
