package runsc

import "testing"

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
