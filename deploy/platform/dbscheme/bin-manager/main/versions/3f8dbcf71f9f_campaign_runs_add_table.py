"""campaign_runs_add_table

Revision ID: 3f8dbcf71f9f
Revises: 2941b6313975
Create Date: 2026-12-06 20:00:01.000000

Live stats and campaign sequences of the Rust campaign-manager
(migrations/20261129060000_stats_sequences.sql):

- campaign_runs: when each campaign was last put to `run`; a campaign whose list is exhausted
  starts its next campaign only if it dialed since then;
- idx_campaign_campaigncalls_campaign_tm_create: a campaign's latest dials, a short range.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3f8dbcf71f9f'
down_revision = '2941b6313975'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_runs(
            campaign_id binary(16)  not null,
            tm_run      datetime(6) not null,

            primary key(campaign_id)
        );
    """)
    op.execute("""create index idx_campaign_campaigncalls_campaign_tm_create on campaign_campaigncalls(campaign_id, tm_create);""")


def downgrade():
    op.execute("""drop index idx_campaign_campaigncalls_campaign_tm_create on campaign_campaigncalls;""")
    op.execute("""drop table campaign_runs;""")
