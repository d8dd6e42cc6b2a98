"""`memex reembed`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from memex.cli.main import EXIT_FATAL, run_async, settings_from
from memex.embeddings.model_files import DIMENSION, MODEL_NAME
from memex.embeddings.spec import EmbeddingSpec
from memex.ingest import reembed as service
from memex.runtime import open_runtime
from memex.settings import Settings

_PHASES = {"embedding": "embedding chunks", "indexing": "building the index", "swapping": "swapping"}


def register(app: typer.Typer) -> None:
    @app.command()
    def reembed(
        ctx: typer.Context,
        model: str | None = typer.Option(
            None, "--model", help="The model to move to (default: MEMEX_EMBEDDING_MODEL).", show_default=False
        ),
        dimension: int | None = typer.Option(
            None, "--dimension", min=1, help="Its vector size (default: MEMEX_EMBEDDING_DIMENSION).", show_default=False
        ),
        rollback: bool = typer.Option(False, "--rollback", help="Go back to the vectors the last swap replaced."),
        discard_previous: bool = typer.Option(
            False, "--discard-previous", help="Drop the vectors kept for --rollback, to free their disk space."
        ),
    ) -> None:
        """Move every embedding to another model while search keeps working.

        The new vectors are built beside the old ones (search goes on with the old), then swapped in at once.
        An interrupted run continues where it stopped when started again. The old vectors are kept for
        --rollback until --discard-previous.
        """
        settings = settings_from(ctx)
        console = Console(stderr=True)
        if rollback and discard_previous:
            console.print("[red]error:[/red] choose --rollback or --discard-previous, not both")
            raise typer.Exit(EXIT_FATAL)
        target = None if rollback or discard_previous else _target(settings, model, dimension, console)

        async def go() -> service.Outcome | None:
            runtime = await open_runtime(settings, check_model=False)
            try:
                if discard_previous:
                    dropped = await service.discard_previous(runtime)
                    console.print(
                        f"dropped the previous vectors ({dropped.describe()})"
                        if dropped
                        else "there were no previous vectors to drop"
                    )
                    return None
                with _Bar(console) as bar:
                    if target is None:
                        return await service.rollback(runtime, on_progress=bar.update)
                    return await service.reembed(runtime, target, on_progress=bar.update)
            finally:
                await runtime.close()

        outcome = run_async(go)
        if outcome is None:
            return
        if not outcome.changed:
            console.print(f"the vectors already come from {outcome.model.describe()}: nothing to do")
            return
        console.print(
            f"search now uses {outcome.model.describe()} ({outcome.embedded} chunks embedded); running servers and "
            "workers follow on their own."
        )
        console.print(_settings_to_set(outcome.model))
        if outcome.previous is not None:
            console.print(
                f"The vectors of {outcome.previous.describe()} are kept: `memex reembed --rollback` goes back, "
                "`memex reembed --discard-previous` frees their space."
            )


def _target(settings: Settings, model: str | None, dimension: int | None, console: Console) -> EmbeddingSpec:
    name = model or settings.embedding_model
    if name == MODEL_NAME and dimension in (None, DIMENSION):
        return EmbeddingSpec(provider="local", name=MODEL_NAME, dimension=DIMENSION)
    if settings.embedding_provider != "openai" or not settings.embedding_base_url:
        console.print(
            f"[red]error:[/red] {name} is not the bundled model ({MODEL_NAME}): it needs an OpenAI-compatible "
            "embeddings server (Ollama, vLLM, llama.cpp, OpenAI). Set MEMEX_EMBEDDING_PROVIDER=openai and "
            "MEMEX_EMBEDDING_BASE_URL (and MEMEX_EMBEDDING_API_KEY if it needs one) for this command."
        )
        raise typer.Exit(EXIT_FATAL)
    if dimension is None and model is not None and model != settings.embedding_model:
        console.print(f"[red]error:[/red] say how many dimensions {name}'s vectors have: --dimension N")
        raise typer.Exit(EXIT_FATAL)
    return EmbeddingSpec(
        provider="openai",
        name=name,
        dimension=dimension or settings.embedding_dimension,
        base_url=settings.embedding_base_url,
    )


def _settings_to_set(spec: EmbeddingSpec) -> str:
    lines = [
        f"MEMEX_EMBEDDING_PROVIDER={spec.provider}",
        f"MEMEX_EMBEDDING_MODEL={spec.name}",
        f"MEMEX_EMBEDDING_DIMENSION={spec.dimension}",
    ]
    if spec.base_url:
        lines.append(f"MEMEX_EMBEDDING_BASE_URL={spec.base_url}")
    return (
        "Before the next restart, set these on every server and worker (a process started with the old ones "
        "refuses to run against the new vectors):\n  " + "\n  ".join(lines)
    )


class _Bar:
    """One progress bar per phase: embedding (chunks), building the index, swapping."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def update(self, phase: service.Phase, done: int, total: int) -> None:
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._progress.add_task(_PHASES[phase], total=total)
        self._progress.update(task, completed=done, total=total)
