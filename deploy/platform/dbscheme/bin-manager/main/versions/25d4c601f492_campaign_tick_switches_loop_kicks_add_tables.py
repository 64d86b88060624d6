"""campaign_tick_switches_loop_kicks_add_tables

Revision ID: 25d4c601f492
Revises: 3f65e7beee68
Create Date: 2026-12-07 02:00:00.000000

Operator records of the Rust campaign-manager that must outlive Redis
(migrations/20261206000000_tick_switch.sql); the Go service never reads them:

- campaign_tick_switches: the durable off switch of a tick namespace
  (`campaign-control queue pause --durable`), read by every tick worker;
- campaign_loop_kicks: the Go execute loops `campaign-control campaign execute` started on a
  rollback, so a second run never starts a second loop.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '25d4c601f492'
down_revision = '3f65e7beee68'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_tick_switches(
            namespace varchar(191) not null,
            paused    tinyint(1)   not null,
            reason    varchar(255) not null,
            tm_update datetime(6)  not null,

            primary key(namespace)
        );
    """)
    op.execute("""
        create table campaign_loop_kicks(
            campaign_id binary(16)  not null,
            confirmed   tinyint(1)  not null,
            tm_kick     datetime(6) not null,

            primary key(campaign_id)
        );
    """)


def downgrade():
    op.execute("""drop table campaign_loop_kicks;""")
    op.execute("""drop table campaign_tick_switches;""")
