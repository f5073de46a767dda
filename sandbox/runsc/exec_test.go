package runsc

import (
	"slices"
	"testing"
)

func TestWithInternalPidFile(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{
			in:   []string{"--root", "/r", "--log", "/l", "exec", "--detach", "--pid-file", "/b/e1.pid", "--process", "/tmp/p.json", "c1"},
			want: []string{"--root", "/r", "--log", "/l", "exec", "--internal-pid-file", "/b/e1.pid.internal", "--detach", "--pid-file", "/b/e1.pid", "--process", "/tmp/p.json", "c1"},
		},
		{
			in:   []string{"exec", "--pid-file=/b/e2.pid", "c1"},
			want: []string{"exec", "--internal-pid-file", "/b/e2.pid.internal", "--pid-file=/b/e2.pid", "c1"},
		},
		// Not an exec, or no pid file: unchanged.
		{in: []string{"--root", "/r", "kill", "c1", "9"}, want: []string{"--root", "/r", "kill", "c1", "9"}},
		{in: []string{"exec", "--process", "/p", "c1"}, want: []string{"exec", "--process", "/p", "c1"}},
		{in: []string{"exec", "--pid-file"}, want: []string{"exec", "--pid-file"}},
	} {
		in := slices.Clone(c.in)
		if got := withInternalPidFile(in); !slices.Equal(got, c.want) {
			t.Errorf("withInternalPidFile(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("withInternalPidFile changed its input: %q", in)
		}
	}
}

func TestKilledFinished(t *testing.T) {
	for msg, want := range map[string]bool{
		"runsc did not terminate successfully: exit status 128: sandbox is not running":          true,
		"signaling process in container \"x\" PID 0: no such process":                            true,
		"process already finished: not found":                                                    true,
		"runsc did not terminate successfully: exit status 128: permission denied":               false,
		"runsc did not terminate successfully: exit status 1: loading container: file not found": false,
		"exit status 128: FetchSpec failed: loading container: file does not exist":              true,
		// CI, critest's attach spec: StopPodSandbox raced the pod container's removal.
		"exit status 128: FetchSpec failed: loading container: open /r/k8s.io/c_sandbox:p.state: no such file or directory": true,
		"exit status 128: FetchSpec failed: loading container: open /r/k8s.io/c_sandbox:p.state: permission denied":         false,
		"exit status 128: loading container: open /b/config.json: no such file or directory":                                false,
	} {
		if got := killedFinished(errString(msg)); got != want {
			t.Errorf("killedFinished(%q) = %v, want %v", msg, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
