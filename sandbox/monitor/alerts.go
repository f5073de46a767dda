package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// alertFile appends alerts as JSON lines to one file per handler. Every
// shim of the handler writes the same file, so each write takes the file's
// flock, checks whether it must rotate, and appends one line with one
// write. Alerts are rare next to points, so opening the file per alert
// costs little and follows a rotation made by another shim.
type alertFile struct {
	path string
	max  int64
}

// write appends one line, rotating first to path.1 when the line would take
// the file past max.
func (f alertFile) write(line []byte) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("alert file directory: %w", err)
	}
	for range 3 {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("alert file: %w", err)
		}
		rotated, err := f.writeLocked(fh, line)
		fh.Close()
		if err != nil || !rotated {
			return err
		}
		// Another shim renamed the file under us: write to the new one.
	}
	return fmt.Errorf("alert file %s: rotated under every attempt", f.path)
}

// writeLocked writes line to fh under its flock; rotated is true when fh
// is no longer the file at path and nothing was written.
func (f alertFile) writeLocked(fh *os.File, line []byte) (rotated bool, err error) {
	if err := unix.Flock(int(fh.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("lock alert file: %w", err)
	}
	defer unix.Flock(int(fh.Fd()), unix.LOCK_UN)
	open, err := fh.Stat()
	if err != nil {
		return false, err
	}
	onDisk, err := os.Stat(f.path)
	if err != nil || !os.SameFile(open, onDisk) {
		return true, nil
	}
	if open.Size() > 0 && open.Size()+int64(len(line)) > f.max {
		if err := os.Rename(f.path, f.path+".1"); err != nil {
			return false, fmt.Errorf("rotate alert file: %w", err)
		}
		return true, nil
	}
	_, err = fh.Write(line)
	return false, err
}

// emit writes one alert to the configured destinations, unless the rule
// has already alerted alert_rate_limit times this minute for the container.
func (m *Monitor) emit(a rules.AlertRecord) {
	m.alerts.Add(1)
	container, _ := a.OutputFields["container.id"].(string)
	ok, held := m.limit.allow(a.Rule, container)
	if held > 0 {
		log.G(m.ctx).WithFields(log.Fields{"rule": a.Rule, "container": container, "held": held}).
			Warn("monitor: alerts held back by alert_rate_limit in the last minute")
	}
	if !ok {
		m.held.Add(1)
		return
	}
	a.Hostname = m.hostname
	line, err := json.Marshal(a)
	if err != nil {
		log.G(m.ctx).WithError(err).Error("monitor: encode alert")
		return
	}
	if *m.cfg.AlertLog {
		log.G(m.ctx).WithFields(log.Fields{
			"rule": a.Rule, "priority": a.Priority, "container": a.OutputFields["container.id"],
			"pod": a.OutputFields["k8s.pod.name"], "pod_namespace": a.OutputFields["k8s.ns.name"],
		}).Warn("palisade alert: " + a.Output)
	}
	if m.file.path != "" {
		if err := m.file.write(append(line, '\n')); err != nil {
			log.G(m.ctx).WithError(err).Error("monitor: write alert")
		}
	}
}
