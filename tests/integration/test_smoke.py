import sqlalchemy as sa

from memex.runtime import Runtime


async def test_runtime_opens_migrated_database(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        n = (await conn.execute(sa.text("SELECT count(*) FROM chunks"))).scalar_one()
    assert n == 0
