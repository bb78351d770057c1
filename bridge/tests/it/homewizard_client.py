"""Reads a HomeWizard P1 meter (here: p1-bridge) with python-homewizard-energy, the library Home Assistant's
HomeWizard integration uses, and prints what it understood as JSON. Usage: homewizard_client.py HOST:PORT"""

import asyncio
import dataclasses
import json
import sys

from homewizard_energy import HomeWizardEnergy


def plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "name") and hasattr(value, "value"):  # enums
        return value.name if not isinstance(value.value, str) else value.value
    if hasattr(value, "isoformat"):
        return str(value)
    return value


async def main(host):
    async with HomeWizardEnergy(host) as api:
        device = await api.device()
        data = await api.data()
    out = {"device": plain(device), "data": plain(data)}
    # The product as the library names it (Home Assistant shows this).
    out["device"]["product"] = device.product.name if device.product else None
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
