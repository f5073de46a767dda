package policy

import (
	"fmt"
	"testing"
)

// parseKernelVersion reads "major.minor" without fmt when it can; it must
// read every input as fmt.Sscanf does.
func TestParseKernelVersionAgreesWithSscanf(t *testing.T) {
	for _, s := range []string{"", "6.1", "4.8", "06.01", "10.15", "6", "6.", ".1", "6.1.0", "6.1-rc1",
		"a.b", " 6.1", "6 .1", "+6.1", "-6.1", "99999999999999999999.1", "123456789.987654321", "1234567890.1"} {
		got, gerr := parseKernelVersion(s)
		var want kernelVersion
		var werr error
		if s != "" {
			_, werr = fmt.Sscanf(s, "%d.%d", &want.major, &want.minor)
			want.known = werr == nil
		}
		if (gerr == nil) != (werr == nil) || gerr == nil && got != want {
			t.Errorf("%q: got %+v, %v; Sscanf reads %+v, %v", s, got, gerr, want, werr)
		}
	}
}
