package rules

import (
	"slices"
	"strings"
)

// Field returns the value of one field by its Falco name, for output
// templates and output_fields. ok is false for a name that is not a field.
// A switch, not a table, keeps the package free of mutable state.
func (e *Event) Field(name string) (v any, ok bool) {
	switch name {
	case "evt.time":
		return e.Evt.Time, true
	case "evt.type":
		return e.Evt.Type, true
	case "evt.dir":
		return e.Evt.Dir, true
	case "evt.res":
		return e.Evt.Res, true
	case "evt.failed":
		return e.Evt.Failed, true
	case "evt.is_open_read":
		return e.Evt.IsOpenRead, true
	case "evt.is_open_write":
		return e.Evt.IsOpenWrite, true
	case "evt.is_open_trunc":
		return e.Evt.IsOpenTrunc, true
	case "evt.arg.raw1":
		return e.Evt.Arg.Raw1, true
	case "evt.arg.raw2":
		return e.Evt.Arg.Raw2, true
	case "evt.sysno":
		return e.Evt.Sysno, true
	case "evt.arg.flags":
		return e.Evt.Arg.Flags, true
	case "evt.arg.uid":
		return e.Evt.Arg.UID, true
	case "evt.arg.gid":
		return e.Evt.Arg.GID, true
	case "evt.arg.domain":
		return e.Evt.Arg.Domain, true
	case "evt.arg.type":
		return e.Evt.Arg.Type, true
	case "evt.arg.protocol":
		return e.Evt.Arg.Protocol, true
	case "proc.name":
		return e.Proc.Name, true
	case "proc.exepath":
		return e.Proc.Exepath, true
	case "proc.args":
		return strings.Join(e.Proc.Args, " "), true
	case "proc.cmdline":
		return e.Proc.Cmdline, true
	case "proc.pid":
		return e.Proc.Pid, true
	case "proc.tid":
		return e.Proc.Tid, true
	case "proc.ppid":
		return e.Proc.Ppid, true
	case "proc.cwd":
		return e.Proc.Cwd, true
	case "proc.tty":
		return e.Proc.Tty, true
	case "user.uid":
		return e.User.UID, true
	case "user.ruid":
		return e.User.RUID, true
	case "group.gid":
		return e.Group.GID, true
	case "fd.name":
		return e.Fd.Name, true
	case "fd.directory":
		return e.Fd.Directory, true
	case "fd.filename":
		return e.Fd.Filename, true
	case "fd.sockfamily":
		return e.Fd.SockFamily, true
	case "fd.sip":
		return e.Fd.SIP, true
	case "fd.sport":
		return e.Fd.SPort, true
	case "container.id":
		return e.Container.ID, true
	case "container.name":
		return e.Container.Name, true
	case "container.image":
		return e.Container.Image, true
	case "k8s.pod.name":
		return e.K8s.Pod.Name, true
	case "k8s.ns.name":
		return e.K8s.Ns.Name, true
	}
	return nil, false
}

// baseOutputFields are in every alert's output_fields, whatever the output
// template names, because Falco consumers (falcosidekick and its routing
// rules) key on them.
func baseOutputFields() []string {
	return []string{"container.id", "container.name", "container.image", "k8s.pod.name", "k8s.ns.name", "evt.type", "proc.name", "proc.cmdline", "user.uid"}
}

// isField reports whether name is a field of the condition language.
func isField(name string) bool {
	var e Event
	_, ok := e.Field(name)
	return ok
}

// outputFieldNames is the sorted union of the base fields and those named in
// a template.
func outputFieldNames(t template) []string {
	names := baseOutputFields()
	for _, p := range t {
		if p.field != "" && !slices.Contains(names, p.field) {
			names = append(names, p.field)
		}
	}
	slices.Sort(names)
	return names
}
