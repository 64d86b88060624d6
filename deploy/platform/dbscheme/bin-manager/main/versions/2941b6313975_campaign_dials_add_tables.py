"""campaign_dials_add_tables

Revision ID: 2941b6313975
Revises: ab1507b96589
Create Date: 2026-12-06 20:00:00.000000

The Rust campaign-manager's own bookkeeping of dials, which the Go service never reads
(campaign-manager's migrations/20261129000000_dial_records.sql):

- campaign_dial_fences: per campaign, the highest tick sequence number that recorded a dial
  (the fencing token: a stale tick records nothing);
- campaign_dials: one row per dial attempt, at most one per (target, destination, try), how far
  the dial is known to have got and when the repair looks at it next;
- idx_campaign_campaigncalls_status_tm_create: the repair reads open campaigncalls by age.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '2941b6313975'
down_revision = 'ab1507b96589'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_dial_fences(
            campaign_id binary(16)      not null,
            seq         bigint unsigned not null,
            tm_update   datetime(6)     not null,

            primary key(campaign_id)
        );
    """)
    op.execute("""
        create table campaign_dials(
            campaigncall_id   binary(16)      not null,
            campaign_id       binary(16)      not null,
            outdial_target_id binary(16)      not null,
            destination_index integer         not null,
            try_count         integer         not null,
            seq               bigint unsigned not null,
            step              varchar(32)     not null,
            checks            integer         not null default 0,
            tm_create         datetime(6)     not null,
            tm_step           datetime(6)     not null,
            tm_next_check     datetime(6)     null,

            primary key(campaigncall_id),
            unique key uq_campaign_dials_try (outdial_target_id, destination_index, try_count)
        );
    """)
    op.execute("""create index idx_campaign_campaigncalls_status_tm_create on campaign_campaigncalls(status, tm_create);""")


def downgrade():
    op.execute("""drop index idx_campaign_campaigncalls_status_tm_create on campaign_campaigncalls;""")
    op.execute("""drop table campaign_dials;""")
    op.execute("""drop table campaign_dial_fences;""")
