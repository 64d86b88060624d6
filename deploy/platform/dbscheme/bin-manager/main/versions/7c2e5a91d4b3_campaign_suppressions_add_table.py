"""campaign_suppressions_add_table

Revision ID: 7c2e5a91d4b3
Revises: 8d1e5a7c42b0
Create Date: 2026-12-07 04:00:00.000000

The do-not-call list of the Rust campaign-manager (migrations/20261207000100_suppressions.sql);
the Go service never reads it. One row per (customer, normalised target): the unique key is
also the dial's lookup, checked inside the transaction that records each dial.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '7c2e5a91d4b3'
down_revision = '8d1e5a7c42b0'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_suppressions(
            id          binary(16)   not null,
            customer_id binary(16)   not null,
            target      varchar(250) not null,
            reason      varchar(255) not null,
            tm_expire   datetime(6),
            tm_create   datetime(6)  not null,

            primary key(id),
            unique key idx_campaign_suppressions_customer_target(customer_id, target),
            key idx_campaign_suppressions_customer_create(customer_id, tm_create)
        );
    """)


def downgrade():
    op.execute("""drop table campaign_suppressions;""")
