package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/shim"
)

// taskStateDir is the directory under containerd's state directory that
// holds the bundle of each running task, by namespace and container id.
const taskStateDir = "io.containerd.runtime.v2.task"

func (e env) inspect(_ context.Context, cmd *cli.Command) error {
	id, err := oneArg(cmd, "container id")
	if err != nil {
		return err
	}
	ns := cmd.String("namespace")
	// Both become path elements: refuse anything that would leave the
	// state directory.
	for _, v := range [][2]string{{"container id", id}, {"namespace", ns}} {
		if v[1] == "" || v[1] == "." || v[1] == ".." || strings.ContainsAny(v[1], "/\x00") {
			return fmt.Errorf("%s %q: not a containerd name", v[0], v[1])
		}
	}
	bundle := filepath.Join(cmd.String("state"), taskStateDir, ns, id)
	path := filepath.Join(bundle, shim.DecisionFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, statErr := os.Stat(bundle); statErr != nil {
			return fmt.Errorf("container %s: no running task in namespace %s (%s: %w)", id, ns, bundle, statErr)
		}
		return fmt.Errorf("container %s: no %s in its bundle: it does not run under Palisade, or Create failed", id, shim.DecisionFile)
	case err != nil:
		return fmt.Errorf("read decision record: %w", err)
	}
	if cmd.Bool("json") {
		_, err := e.stdout.Write(data)
		return err
	}
	return writeDecision(e.stdout, data)
}

// writeDecision prints a decision record as a table: the handler first,
// then one block of rows per control.
func writeDecision(w io.Writer, data []byte) error {
	var d policy.Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return fmt.Errorf("decode %s: %w", shim.DecisionFile, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	host := d.AppArmorHostProfile
	if host == "" {
		host = "(none)"
	}
	if p := d.Pod; p != nil {
		ctr := p.Container
		if ctr == "" {
			ctr = "(sandbox)"
		}
		fmt.Fprintf(tw, "pod\t%s/%s\ncontainer\t%s\n", oneLine(p.Namespace), oneLine(p.Name), oneLine(ctr))
	}
	fmt.Fprintf(tw, "handler\t%s\nbackend\t%s\nmode\t%s\napparmor host profile\t%s\n\n",
		oneLine(d.Handler), oneLine(d.Backend), oneLine(d.Mode), oneLine(host))
	fmt.Fprintln(tw, "CONTROL\tFIELD\tVALUE")
	for _, c := range d.Controls {
		name := oneLine(c.Name)
		field := func(label string, values ...string) {
			for _, v := range values {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", name, label, oneLine(v))
				name, label = "", ""
			}
		}
		field("requested", splitSets(orDash(c.Requested))...)
		field("effective", splitSets(orDash(c.Effective))...)
		field("enforced by", orDash(c.EnforcedBy))
		field("changes", c.Changed...)
		if c.NotEnforced != "" {
			field("NOT ENFORCED", c.NotEnforced)
		}
	}
	return tw.Flush()
}

// splitSets puts each set of a capabilities value
// ("bounding=A,B effective=A ...") on its own line; other values, such as
// a seccomp summary, stay whole.
func splitSets(v string) []string {
	parts := strings.Fields(v)
	if len(parts) < 2 {
		return []string{v}
	}
	for _, p := range parts {
		if !strings.Contains(p, "=") {
			return []string{v}
		}
	}
	return parts
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a value from breaking the table: the record comes from a
// file in the bundle, and a tab or newline would shift every column.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' {
			return ' '
		}
		return r
	}, s)
}
