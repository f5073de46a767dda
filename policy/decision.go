package policy

import "errors"

// Sentinel errors. Enforce wraps them with %w; the shim maps them to status
// codes (the only place errors become gRPC/ttrpc codes).
var (
	// ErrInvalid: the request itself is malformed (e.g. an unknown
	// capability name or seccomp action in the spec).
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: over_ceiling = "refuse" and the request exceeded the
	// ceiling. The message lists everything that exceeded.
	ErrRefused = errors.New("refused by handler floor")
	// ErrNotEnforceable: a control the handler requires cannot be enforced
	// by this backend or host. The message names the control and why.
	ErrNotEnforceable = errors.New("not enforceable")
)

// Names of the controls in a Decision, in the order they are recorded.
const (
	ControlSeccomp         = "seccomp"
	ControlCapabilities    = "capabilities"
	ControlNoNewPrivileges = "no_new_privileges"
	ControlAppArmor        = "apparmor"
)

// Decision is the decision record: what was requested, what is enforced and
// by whom, what the floor changed, and what is not enforced and why. The
// shim writes it into the bundle and logs it.
type Decision struct {
	Handler  string    `json:"handler"` // filled by the shim
	Backend  string    `json:"backend"` // from Support.Backend
	Mode     string    `json:"mode"`
	Controls []Control `json:"controls"`
	// AppArmorHostProfile is the profile the shim must attach to the host
	// processes it spawns for this container; "" when there is none, or when
	// it is optional and the host cannot enforce it.
	AppArmorHostProfile string `json:"apparmor_host_profile,omitempty"`
	// Pod names the Kubernetes pod and container the record is about
	// (filled by the shim from containerd's CRI annotations). It is a label
	// for the people reading the record, never an input of the floor.
	Pod *PodRef `json:"pod,omitempty"`
}

// PodRef is a container's place in Kubernetes.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	Container string `json:"container,omitempty"` // "" for the pod's sandbox (pause) container
}

// Control is the record of one control.
type Control struct {
	Name        string   `json:"name"`
	Requested   string   `json:"requested"`
	Effective   string   `json:"effective"`
	EnforcedBy  string   `json:"enforced_by,omitempty"`
	Changed     []string `json:"changed,omitempty"`
	NotEnforced string   `json:"not_enforced,omitempty"`
}
