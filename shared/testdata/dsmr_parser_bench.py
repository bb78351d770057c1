#!/usr/bin/env python3
"""Times the Python `dsmr-parser` package (what Home Assistant's DSMR integration uses) on our benchmark telegrams.

For the README's comparison with p1hub's `cargo bench -p p1hub-shared --bench engine`. It parses the same two
telegrams: the DSMR 5 three-phase telegram with gas and water (spec `V5`) and the Belgian one with 13 months of
capacity history (spec `BELGIUM_FLUVIUS`), with CRC checking on, as the integration does. Prints one JSON object:
microseconds per telegram (best of several rounds, so other load on the machine inflates it least) and the
versions used.

    pip install dsmr-parser
    python3 shared/testdata/dsmr_parser_bench.py [--rounds N] [--number N]
"""

import argparse
import json
import os
import platform
import sys
import timeit

try:
    import dsmr_parser
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser
except ImportError:  # pragma: no cover - a message for people, not a code path tests take
    sys.exit("dsmr-parser is not installed: pip install dsmr-parser")

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    ("dsmr5_3phase_gas_water", "dsmr5_3phase_gas_water.txt", "V5"),
    ("belgian_13months", "belgian_13months.txt", "BELGIUM_FLUVIUS"),
]


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("dsmr-parser")
    except Exception:  # noqa: BLE001 - the version is informative only
        return getattr(dsmr_parser, "__version__", "unknown")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, default=7, help="timing rounds; the best is reported")
    args.add_argument("--number", type=int, default=300, help="parses per round")
    opts = args.parse_args()

    result = {
        "dsmr_parser": package_version(),
        "python": platform.python_version(),
        "rounds": opts.rounds,
        "number": opts.number,
        "us_per_telegram": {},
    }
    for name, path, spec_name in CASES:
        with open(os.path.join(HERE, path), "rb") as f:
            text = f.read().decode("ascii")
        parser = TelegramParser(getattr(telegram_specifications, spec_name))
        telegram = parser.parse(text)  # a failing parse (CRC, spec) stops here rather than timing an error path
        if len(list(telegram)) == 0:
            sys.exit(f"{path}: dsmr-parser found no values")
        times = timeit.repeat(lambda: parser.parse(text), repeat=opts.rounds, number=opts.number)
        result["us_per_telegram"][name] = round(min(times) / opts.number * 1e6, 1)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
