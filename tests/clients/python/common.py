"""What the end-to-end clients in this folder share: the command line they all take (URL,
`--mode legacy|auto`, `--token`), reading exceptions and tool results, and the run itself (a
time bound, errors into the report, ONE JSON line on stdout, the exit code: 0 when the report is
ok, 1 otherwise, 2 on bad usage)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Awaitable, Callable

import anyio

TOTAL_TIMEOUT_S = 60.0


def describe(exc: BaseException) -> str:
    """One readable line for an exception, looking inside exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def text_of(result) -> str:
    """The text blocks of a tool result, joined."""
    return "".join(getattr(block, "text", "") for block in result.content)


class _DropTerminate202(logging.Filter):
    """rmcp answers the session DELETE with 202; the SDK warns because it expects 200/204."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Session termination failed: 202"


def parser(doc: str | None, *, token_required: bool = False) -> argparse.ArgumentParser:
    """The arguments every client takes: URL, `--mode legacy|auto` and `--token`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--mode", choices=["legacy", "auto"], required=True)
    p.add_argument("--token", required=token_required)
    return p


def run_client(
    p: argparse.ArgumentParser,
    report: dict,
    drive: Callable[[argparse.Namespace, dict], Awaitable[None]],
) -> int:
    """Parse the command line, run `drive(args, report)` within the time bound, print the report
    (with `mode`) and return the exit code. On failure the report has `error`, and `status` when
    the report's `requests` hold an HTTP error status (the first one)."""
    try:
        args = p.parse_args()
    except SystemExit:
        return 2
    logging.getLogger("mcp.client.streamable_http").addFilter(_DropTerminate202())
    report["mode"] = args.mode

    async def run() -> None:
        with anyio.fail_after(TOTAL_TIMEOUT_S):
            await drive(args, report)

    try:
        anyio.run(run)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - report anything, including exception groups
        report["ok"] = False
        report["error"] = describe(exc)
    if not report["ok"]:
        report.setdefault("error", "the client stopped early")
        failed = [r["status"] for r in report.get("requests", []) if r["status"] >= 400]
        if failed:
            report["status"] = failed[0]
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1
