"""Planning jobs: the queue of plans run by worker processes (``plan_jobs``).

Revision ID: 0004_plan_jobs
Revises: 0003_worklist
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004_plan_jobs'
down_revision = '0003_worklist'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('plan_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('lesion_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('protocol', sa.String(length=200), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('work_dir', sa.Text(), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=True),
    sa.Column('stage_label', sa.String(length=200), nullable=True),
    sa.Column('stages_done', sa.JSON(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=300), nullable=True),
    sa.Column('saved_plan_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['lesion_id'], ['lesions.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['saved_plan_id'], ['saved_plans.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('plan_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_jobs_lesion_id'), ['lesion_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_jobs_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_jobs_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('plan_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_jobs_state'))
        batch_op.drop_index(batch_op.f('ix_plan_jobs_patient_id'))
        batch_op.drop_index(batch_op.f('ix_plan_jobs_lesion_id'))
    op.drop_table('plan_jobs')
