"""Plan versions: adjustments saved from the review page and the approval that locks a plan (``plan_versions``).

Revision ID: 0005_plan_versions
Revises: 0004_plan_jobs
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005_plan_versions'
down_revision = '0004_plan_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('plan_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('saved_plan_id', sa.Integer(), nullable=False),
    sa.Column('root_plan_id', sa.Integer(), nullable=False),
    sa.Column('parent_plan_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('moved', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['parent_plan_id'], ['saved_plans.id'], ),
    sa.ForeignKeyConstraint(['root_plan_id'], ['saved_plans.id'], ),
    sa.ForeignKeyConstraint(['saved_plan_id'], ['saved_plans.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('saved_plan_id')
    )
    with op.batch_alter_table('plan_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_versions_root_plan_id'), ['root_plan_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('plan_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_versions_root_plan_id'))
    op.drop_table('plan_versions')
