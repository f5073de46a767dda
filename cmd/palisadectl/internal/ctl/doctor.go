package ctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v3"

	"github.com/palisade-runtime/palisade/cmd/palisadectl/internal/probe"
	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
	"github.com/palisade-runtime/palisade/shim"
)

// Statuses in doctor's tables.
const (
	statusOK      = "ok"
	statusMissing = "missing" // the host lacks it; fatal only for handlers that need it
	statusWarn    = "warn"
	statusFail    = "FAIL" // a handler cannot run, or fails closed at Create
)

// row is one line of a doctor table.
type row struct{ name, status, detail string }

func (e env) doctor(ctx context.Context, cmd *cli.Command) error {
	cfg, path, cfgErr := loadConfig(cmd.String("config"))
	host, handlers := e.diagnose(ctx, cfg)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HOST CHECK\tSTATUS\tDETAIL")
	for _, r := range host {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.name, r.status, r.detail)
	}
	fmt.Fprintln(w)
	ok := cfgErr == nil
	if cfgErr != nil {
		fmt.Fprintf(w, "CONFIG\t%s\t%v\n", statusFail, cfgErr)
	} else {
		fmt.Fprintf(w, "HANDLER (%s)\tSTATUS\tDETAIL\n", path)
		for _, r := range handlers {
			fmt.Fprintf(w, "%s\t%s\t%s\n", r.name, r.status, r.detail)
			ok = ok && r.status != statusFail
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !ok {
		return failed()
	}
	return nil
}

// diagnose probes the host and judges each handler of cfg (nil: none).
func (e env) diagnose(ctx context.Context, cfg *shim.Config) (host, handlers []row) {
	f := e.host.Probe()
	// One runsc row per binary the handlers name; "runsc" when there are none.
	binaries := map[string]probe.Runsc{}
	if cfg != nil {
		for _, h := range cfg.Handlers {
			if h.Backend == shim.BackendRunsc {
				binaries[h.Runsc.WithDefaults().Binary] = probe.Runsc{}
			}
		}
	}
	if len(binaries) == 0 {
		binaries[runsc.DefaultBinary] = probe.Runsc{}
	}
	for b := range binaries {
		binaries[b] = e.host.Runsc(ctx, b)
	}

	host = []row{
		factRow("seccomp", f.Seccomp, statusFail),
		factRow("apparmor", f.AppArmor, statusMissing),
		factRow("apparmor_parser", f.AppArmorParser, statusMissing),
	}
	for _, b := range slices.Sorted(maps.Keys(binaries)) {
		r := binaries[b]
		if r.Err != nil {
			host = append(host, row{"runsc (" + b + ")", statusFail, r.Err.Error()})
			continue
		}
		host = append(host, row{"runsc (" + b + ")", statusOK, r.Path + ": static; " + r.Version})
	}
	host = append(host,
		factRow("kata shim", f.KataShim, statusMissing),
		factRow("/dev/kvm", f.KVM, statusMissing),
		factRow("vhost-vsock", f.VhostVsock, statusMissing),
		factRow("cgroup", f.Cgroup, statusWarn),
	)
	capRow := factRow("CAP_SYS_RESOURCE", f.CapSysResource, statusWarn)
	if !f.CapSysResource.OK {
		capRow.detail = "not in " + capRow.detail + ": containerd's CRI needs restrict_oom_score_adj = true"
	}
	host = append(host, capRow)

	if cfg == nil {
		return host, nil
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Handlers)) {
		h := cfg.Handlers[name]
		fails, warns := e.judge(h, f, binaries)
		label := name + " (" + h.Backend + ")"
		switch {
		case len(fails) > 0:
			handlers = append(handlers, messageRows(label, statusFail, fails)...)
			handlers = append(handlers, messageRows("", statusWarn, warns)...)
		case len(warns) > 0:
			handlers = append(handlers, messageRows(label, statusWarn, warns)...)
		default:
			handlers = append(handlers, row{label, statusOK, "can run here"})
		}
	}
	return host, handlers
}

// judge says why handler h cannot run here (fails) and what it runs without
// (warns).
func (e env) judge(h shim.Handler, f probe.Facts, binaries map[string]probe.Runsc) (fails, warns []string) {
	floor, err := shim.LoadFloor(h.Policy)
	if err != nil {
		return []string{"policy: " + err.Error()}, nil
	}
	switch h.Backend {
	case shim.BackendRunsc:
		c := h.Runsc.WithDefaults()
		if r := binaries[c.Binary]; r.Err != nil {
			fails = append(fails, "runsc.binary: "+r.Err.Error())
		}
		// runsc confines its own sandbox with seccomp filters, and systrap
		// traps the application's system calls with them.
		if !f.Seccomp.OK {
			fails = append(fails, "runsc needs seccomp filters in the host kernel: "+f.Seccomp.Detail)
		}
		if c.Platform == "kvm" && !f.KVM.OK {
			fails = append(fails, "runsc.platform = \"kvm\" needs /dev/kvm: "+f.KVM.Detail)
		}
	case shim.BackendKata, shim.BackendShim:
		c := h.Shim.WithDefaults(h.Backend)
		bin := c.Binary
		if bin == "" {
			bin = cshim.BinaryName(c.RuntimeType)
		}
		if _, err := e.host.LookPath(bin); err != nil {
			fails = append(fails, fmt.Sprintf("shim: downstream shim %s not found: %v", bin, err))
		}
		// Kata's VMs need hardware virtualisation and a vsock to the agent.
		if h.Backend == shim.BackendKata {
			if !f.KVM.OK {
				fails = append(fails, "Kata needs /dev/kvm: "+f.KVM.Detail)
			}
			if !f.VhostVsock.OK {
				fails = append(fails, "Kata needs vhost-vsock: "+f.VhostVsock.Detail)
			}
		}
	default:
		warns = append(warns, fmt.Sprintf("backend %q: its host needs are not checked by this palisadectl", h.Backend))
	}
	if a := h.Policy.AppArmor; a.File != "" && f.AppArmor.OK && !f.AppArmorParser.OK {
		msg := fmt.Sprintf("policy.apparmor.file %s needs apparmor_parser: %s", a.File, f.AppArmorParser.Detail)
		if a.Required {
			fails = append(fails, msg)
		} else {
			warns = append(warns, msg)
		}
	}
	s, err := e.support(h)
	if err != nil {
		return fails, append(warns, "fail-closed checks skipped: "+err.Error())
	}
	// A dry run of Create's policy step on the plainest container (see
	// plainSpec): it fails
	// exactly when a control the handler requires has no enforcer here.
	spec, err := plainSpec()
	if err != nil {
		return fails, append(warns, "fail-closed checks skipped: "+err.Error())
	}
	d, err := policy.Enforce(spec, floor, s)
	switch {
	case errors.Is(err, policy.ErrNotEnforceable):
		fails = append(fails, "will fail closed: "+strings.TrimPrefix(err.Error(), policy.ErrNotEnforceable.Error()+": "))
	case err != nil:
		fails = append(fails, "policy: "+err.Error())
	default:
		for _, c := range d.Controls {
			if c.NotEnforced != "" {
				warns = append(warns, c.Name+": "+c.NotEnforced)
			}
		}
	}
	return fails, warns
}

// factRow shows a fact; a missing one gets the status given.
func factRow(name string, f probe.Fact, ifMissing string) row {
	if f.OK {
		return row{name, statusOK, f.Detail}
	}
	return row{name, ifMissing, f.Detail}
}

// messageRows puts each message on its own row, the label on the first.
func messageRows(label, status string, msgs []string) []row {
	rows := make([]row, 0, len(msgs))
	for i, m := range msgs {
		if i > 0 {
			label = ""
		}
		rows = append(rows, row{label, status, m})
	}
	return rows
}

// plainSpec is containerd's default container spec, as `ctr run` with no
// options would create it, with an empty process: a handler's ceiling is
// about what a pod asks for, and a refusal of containerd's default
// capabilities says nothing about the host.
func plainSpec() (*specs.Spec, error) {
	ctx := namespaces.WithNamespace(context.Background(), "palisadectl")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "palisadectl-doctor"})
	if err != nil {
		return nil, err
	}
	s.Process = &specs.Process{}
	return s, nil
}
