package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v3"
)

// maxAlertLine bounds one line of an alert file; a longer one is skipped.
const maxAlertLine = 1 << 20

// followInterval is how often --follow looks for new alerts.
const followInterval = 500 * time.Millisecond

// alertLine is what events prints of an alert in Falco's JSON format.
type alertLine struct {
	Time         string         `json:"time"`
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
}

// alertFiles are the files events reads: --file, else the alert file of
// every handler of config.toml that monitors.
func alertFiles(cmd *cli.Command) ([]string, error) {
	if files := cmd.StringSlice("file"); len(files) > 0 {
		return files, nil
	}
	cfg, _, err := loadConfig(cmd.String("config"))
	if err != nil {
		return nil, err
	}
	var files []string
	for name, h := range cfg.Handlers {
		if m := h.Monitoring.WithDefaults(name); h.Monitoring.Enabled && m.AlertFile != "-" && !slices.Contains(files, m.AlertFile) {
			files = append(files, m.AlertFile)
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no handler of the config has monitoring enabled with an alert file (see [handlers.<name>.monitoring])")
	}
	slices.Sort(files)
	return files, nil
}

func (e env) events(ctx context.Context, cmd *cli.Command) error {
	files, err := alertFiles(cmd)
	if err != nil {
		return err
	}
	f := eventFilter{pod: cmd.String("pod"), namespace: cmd.String("pod-namespace"), json: cmd.Bool("json")}
	pos := make([]readPos, len(files))
	for {
		for i, path := range files {
			p, err := e.printAlerts(path, pos[i], f)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			pos[i] = p
		}
		if !cmd.Bool("follow") {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followInterval):
		}
	}
}

type eventFilter struct {
	pod, namespace string
	json           bool
}

func (f eventFilter) match(a alertLine) bool {
	return (f.pod == "" || a.OutputFields["k8s.pod.name"] == f.pod) &&
		(f.namespace == "" || a.OutputFields["k8s.ns.name"] == f.namespace)
}

// readPos is how far events has read an alert file, and which file that
// was: the shim rotates it by renaming, and a new file is read from its
// start.
type readPos struct {
	file   os.FileInfo
	offset int64
}

// printAlerts prints the alerts of path from pos on and returns the
// position reached.
func (e env) printAlerts(path string, pos readPos, f eventFilter) (readPos, error) {
	fh, err := os.Open(path)
	if err != nil {
		return pos, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return pos, err
	}
	if pos.file == nil || !os.SameFile(pos.file, st) || st.Size() < pos.offset {
		pos = readPos{file: st}
	}
	offset := pos.offset
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return pos, err
	}
	r := bufio.NewReaderSize(fh, 64<<10)
	for {
		line, n, err := readLine(r)
		if err != nil {
			// A partial last line is read again once it is complete.
			pos.offset = offset
			return pos, nil
		}
		offset += int64(n)
		var a alertLine
		if len(line) > maxAlertLine || json.Unmarshal(line, &a) != nil || !f.match(a) {
			continue
		}
		if f.json {
			e.stdout.Write(line)
			continue
		}
		fmt.Fprintf(e.stdout, "%s %-8s %s pod=%s/%s container=%s\n    %s\n", a.Time, a.Priority, a.Rule,
			field(a, "k8s.ns.name"), field(a, "k8s.pod.name"), field(a, "container.id"), a.Output)
	}
}

// readLine reads one whole line and returns it (cut after maxAlertLine+1
// bytes, enough to know it is too long) with its length in the file; io.EOF
// when no whole line is left.
func readLine(r *bufio.Reader) ([]byte, int, error) {
	var line []byte
	n := 0
	for {
		chunk, err := r.ReadSlice('\n')
		n += len(chunk)
		if len(line) <= maxAlertLine {
			line = append(line, chunk[:min(len(chunk), maxAlertLine+1-len(line))]...)
		}
		switch {
		case err == nil:
			return line, n, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, 0, err
		}
	}
}

func field(a alertLine, name string) string {
	if v, ok := a.OutputFields[name].(string); ok && v != "" {
		return v
	}
	return "-"
}
