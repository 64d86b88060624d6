"""campaign_outbox_add_table

Revision ID: 6c0e3b1f9a27
Revises: 7c2e5a91d4b3
Create Date: 2026-12-07 04:00:00.000000

Follow-up work of the Rust campaign-manager that must outlive the process that decided it
(migrations/20261207040000_outbox.sql): the outdial target status after a finished
campaigncall, and the start of a sequence's next campaign. The Go service never reads it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '6c0e3b1f9a27'
down_revision = '7c2e5a91d4b3'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_outbox(
            id              binary(16)  not null,
            kind            varchar(32) not null,
            campaign_id     binary(16)  not null,
            campaigncall_id binary(16)  not null,
            subject_id      binary(16)  not null,
            value           varchar(16) not null,
            attempts        integer     not null,
            tm_create       datetime(6) not null,
            tm_due          datetime(6) not null,

            primary key(id),
            index idx_campaign_outbox_tm_due(tm_due)
        );
    """)


def downgrade():
    op.execute("""drop table campaign_outbox;""")
