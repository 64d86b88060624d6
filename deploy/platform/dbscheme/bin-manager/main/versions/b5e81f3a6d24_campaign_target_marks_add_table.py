"""campaign_target_marks_add_table

Revision ID: b5e81f3a6d24
Revises: 6c0e3b1f9a27
Create Date: 2026-12-07 06:00:00.000000

What the Rust campaign-manager's live stats count once per target
(migrations/20261207060000_target_marks.sql): targets ended because every destination is
suppressed, and targets whose number has no zone under `destination_local` calling hours.
The Go service never reads it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b5e81f3a6d24'
down_revision = '6c0e3b1f9a27'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        create table campaign_target_marks(
            campaign_id binary(16)  not null,
            mark        varchar(32) not null,
            target_id   binary(16)  not null,
            tm_create   datetime(6) not null,

            primary key(campaign_id, mark, target_id)
        );
    """)


def downgrade():
    op.execute("""drop table campaign_target_marks;""")
