package policy

import (
	"fmt"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// capsOutcome is the result of applying the ceiling and drop list to the
// five capability sets of one process, before anything is written back.
type capsOutcome struct {
	sets      [5][]string // result per set, canonical names, request order
	bounding  capSet      // the resulting bounding set
	requested string
	effective string
	changed   []string
	exceeded  []string // one entry per set with capabilities above the ceiling
}

var capSetNames = [5]string{"bounding", "effective", "inheritable", "permitted", "ambient"}

func capSlices(c *specs.LinuxCapabilities) [5]*[]string {
	return [5]*[]string{&c.Bounding, &c.Effective, &c.Inheritable, &c.Permitted, &c.Ambient}
}

// clampCaps computes request ∩ ceiling − drop for each set. apply is false
// in complain mode: the result is the request, and Changed says what would
// have been removed. An unknown name is ErrInvalid.
func clampCaps(c *specs.LinuxCapabilities, f *Floor, apply bool) (*capsOutcome, error) {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	out := &capsOutcome{}
	verb := "removed"
	if !apply {
		verb = "would remove"
	}
	var req, eff []string
	for i, p := range capSlices(c) {
		field := "process.capabilities." + capSetNames[i]
		var seen, above, dropped capSet
		var kept, all []string
		for j, name := range *p {
			n, ok := capNumber(name)
			if !ok {
				return nil, fmt.Errorf("%w: %s[%d]: unknown capability %q", ErrInvalid, field, j, name)
			}
			if seen.has(n) {
				continue
			}
			seen |= 1 << uint(n)
			all = append(all, capabilityNames[n])
			switch {
			case f.hasCeiling && !f.ceiling.has(n):
				above |= 1 << uint(n)
			case f.drop.has(n):
				dropped |= 1 << uint(n)
			default:
				kept = append(kept, capabilityNames[n])
			}
		}
		if !apply {
			kept = all
		}
		out.sets[i] = kept
		if i == 0 {
			for _, k := range kept {
				n, _ := capNumber(k)
				out.bounding |= 1 << uint(n)
			}
		}
		if above != 0 {
			out.exceeded = append(out.exceeded, fmt.Sprintf("%s: %s above ceiling", field, strings.Join(above.names(), ", ")))
			out.changed = append(out.changed, fmt.Sprintf("%s: %s %s (above ceiling)", field, verb, strings.Join(above.names(), ", ")))
		}
		if dropped != 0 {
			out.changed = append(out.changed, fmt.Sprintf("%s: %s %s (drop list)", field, verb, strings.Join(dropped.names(), ", ")))
		}
		req = append(req, capSetNames[i]+"="+strings.Join(all, ","))
		eff = append(eff, capSetNames[i]+"="+strings.Join(kept, ","))
	}
	out.requested = strings.Join(req, " ")
	out.effective = strings.Join(eff, " ")
	return out, nil
}

// write stores the outcome in the process. A process that had no
// capabilities object and still has none keeps it nil.
func (o *capsOutcome) write(p *specs.Process) {
	empty := true
	for _, s := range o.sets {
		if len(s) > 0 {
			empty = false
		}
	}
	if p.Capabilities == nil && empty {
		return
	}
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{}
	}
	for i, dst := range capSlices(p.Capabilities) {
		*dst = o.sets[i]
	}
}
