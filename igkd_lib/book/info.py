"""``python -m igkd_lib info``: the models, their sizes and costs, the data source, device and profile."""
from __future__ import annotations

import pandas as pd

from igkd_lib import models
from igkd_lib.config import STUDENT_CUTS, Config
from igkd_lib.data.cifar10 import load_cifar10
from igkd_lib.provenance import provenance

__all__ = ["model_table", "cli"]


def model_table() -> pd.DataFrame:
    """Parameters and MACs per image of the teacher and every student cut."""
    rows = [{"model": "teacher", "cut": 0, "parameters": models.count_parameters(models.teacher()),
             "macs": models.count_macs(models.teacher())}]
    for cut in STUDENT_CUTS:
        net = models.student(cut)
        rows.append({"model": f"student(cut={cut})", "cut": cut, "parameters": models.count_parameters(net),
                     "macs": models.count_macs(net)})
    table = pd.DataFrame(rows)
    table["param_ratio"] = table["parameters"].iloc[0] / table["parameters"]
    table["mac_ratio"] = table["macs"].iloc[0] / table["macs"]
    return table


def cli(config: Config, args) -> int:
    data = load_cifar10("test", config)
    info = provenance(config, data.source_label)
    for key, value in info.items():
        print(f"{key:>12}: {value}")
    print()
    print(model_table().to_string(index=False, formatters={"param_ratio": "{:.2f}x".format,
                                                           "mac_ratio": "{:.2f}x".format}))
    return 0
