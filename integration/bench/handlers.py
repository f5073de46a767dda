"""Writes the Palisade configs the bench runs, from the repo's config.toml.

usage: handlers.py CONFIG_TOML RUNSC ROOT OUTDIR

Three files, one handler each (ctr selects a handler through the config
file's default_handler):
  gvisor.toml  the shipped [handlers.gvisor] floor (seccomp runtime-default,
               capability ceiling and drop list, no_new_privileges; clamp)
  strict.toml  the shipped [handlers.gvisor-strict] floor (smaller ceiling,
               refuse), the strictest that runs here
  open.toml    the same backend with no floor at all
The AppArmor table is left out of all three: this kernel has no AppArmor, so
the strict handler (required = true) would fail closed, and the default one
(required = false) would only record that it was skipped. Only runsc's
binary and state root are changed; everything else is taken as shipped.

It also prints the capabilities ctr's default set has above the strict
ceiling (one per line), which the strict run drops so that its request fits.
"""

import sys
import tomllib

# containerd's default capability set (oci.WithDefaultSpec), what ctr asks for.
CTR_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"unsupported TOML value {v!r}")


def table(path, d, out):
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
    subs = {k: v for k, v in d.items() if isinstance(v, dict)}
    if path:
        out.append(f"\n[{'.'.join(path)}]")
    for k, v in scalars.items():
        out.append(f"{k} = {value(v)}")
    for k, v in subs.items():
        table(path + [k], v, out)


def write(path, name, handler):
    out = [f'default_handler = "{name}"']
    table(["handlers", name], handler, out)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    config, runsc, root, outdir = sys.argv[1:5]
    with open(config, "rb") as f:
        shipped = tomllib.load(f)["handlers"]

    def handler(name):
        h = {"backend": "runsc", "runsc": dict(shipped[name]["runsc"])}
        h["runsc"]["binary"] = runsc
        h["runsc"]["root"] = root
        policy = dict(shipped[name].get("policy", {}))
        policy.pop("apparmor", None)
        h["policy"] = policy
        return h

    write(f"{outdir}/gvisor.toml", "gvisor", handler("gvisor"))
    write(f"{outdir}/strict.toml", "strict", handler("gvisor-strict"))
    open_h = handler("gvisor")
    open_h["policy"] = {}
    write(f"{outdir}/open.toml", "open", open_h)

    ceiling = set(shipped["gvisor-strict"]["policy"]["capabilities"]["ceiling"])
    for cap in CTR_DEFAULT_CAPS:
        if cap not in ceiling:
            print(cap)


if __name__ == "__main__":
    main()
