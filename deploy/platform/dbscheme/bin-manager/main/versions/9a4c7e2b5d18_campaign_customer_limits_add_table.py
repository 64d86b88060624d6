"""campaign_customer_limits_add_table

Revision ID: 9a4c7e2b5d18
Revises: 4b9d2e7a1c05
Create Date: 2026-12-07 08:00:00.000000

Customer-wide dial limits of the Rust campaign-manager (its
migrations/20261207080000_customer_limits.sql): one row per customer that has any; the Go
service never reads it. The two indexes on campaign_campaigncalls make the dial's count of a
customer's open calls and its read of the customer's newest dials short ranges.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '9a4c7e2b5d18'
down_revision = '4b9d2e7a1c05'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_customer_limits(
            customer_id          binary(16)  not null,
            max_concurrent_calls integer,
            dials_per_second     double,
            tm_update            datetime(6) not null,

            primary key(customer_id)
        );
    """)
    op.execute("""create index idx_campaign_campaigncalls_customer_status on campaign_campaigncalls(customer_id, status);""")
    op.execute("""create index idx_campaign_campaigncalls_customer_tm_create on campaign_campaigncalls(customer_id, tm_create);""")


def downgrade():
    op.execute("""drop index idx_campaign_campaigncalls_customer_tm_create on campaign_campaigncalls;""")
    op.execute("""drop index idx_campaign_campaigncalls_customer_status on campaign_campaigncalls;""")
    op.execute("""drop table campaign_customer_limits;""")
