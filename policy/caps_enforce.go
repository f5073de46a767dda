package policy

import (
	"fmt"

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

// capFields are the JSON paths of the five sets, for errors and records.
var capFields = [5]string{"process.capabilities.bounding", "process.capabilities.effective",
	"process.capabilities.inheritable", "process.capabilities.permitted", "process.capabilities.ambient"}

func capSlices(c *specs.LinuxCapabilities) [5]*[]string {
	return [5]*[]string{&c.Bounding, &c.Effective, &c.Inheritable, &c.Permitted, &c.Ambient}
}

// clampCaps computes request ∩ ceiling − drop for each set. apply is false
// in complain mode: the result is the request, and Changed says what would
// have been removed. An unknown name is ErrInvalid.
//
// It runs for every container and exec, so the texts are built in place
// and the five result sets share one array (each clipped).
func clampCaps(c *specs.LinuxCapabilities, f *Floor, apply bool) (*capsOutcome, error) {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	out := &capsOutcome{}
	verb := "removed"
	if !apply {
		verb = "would remove"
	}
	sets := capSlices(c)
	total := 0
	for _, p := range sets {
		total += len(*p)
	}
	kept := make([]string, 0, total)
	req := make([]byte, 0, 64+20*total)
	eff := make([]byte, 0, 64+20*total)
	for i, p := range sets {
		var seen, above, dropped capSet
		if i > 0 {
			req, eff = append(req, ' '), append(eff, ' ')
		}
		req = append(append(req, capSetNames[i]...), '=')
		eff = append(append(eff, capSetNames[i]...), '=')
		start, reqStart, effStart := len(kept), len(req), len(eff)
		for j, name := range *p {
			n, ok := capNumber(name)
			if !ok {
				return nil, fmt.Errorf("%w: %s[%d]: unknown capability %q", ErrInvalid, capFields[i], j, name)
			}
			if seen.has(n) {
				continue
			}
			seen |= 1 << uint(n)
			req = appendListItem(req, reqStart, capabilityNames[n])
			switch {
			case f.hasCeiling && !f.ceiling.has(n):
				above |= 1 << uint(n)
				if apply {
					continue
				}
			case f.drop.has(n):
				dropped |= 1 << uint(n)
				if apply {
					continue
				}
			}
			kept = append(kept, capabilityNames[n])
			eff = appendListItem(eff, effStart, capabilityNames[n])
			if i == 0 {
				out.bounding |= 1 << uint(n)
			}
		}
		if end := len(kept); end > start {
			out.sets[i] = kept[start:end:end]
		}
		if above != 0 {
			out.exceeded = append(out.exceeded, capFields[i]+": "+above.joined()+" above ceiling")
			out.changed = append(out.changed, capFields[i]+": "+verb+" "+above.joined()+" (above ceiling)")
		}
		if dropped != 0 {
			out.changed = append(out.changed, capFields[i]+": "+verb+" "+dropped.joined()+" (drop list)")
		}
	}
	out.requested = string(req)
	out.effective = string(eff)
	return out, nil
}

// appendListItem appends a comma-separated item to the list that starts
// at start in b.
func appendListItem(b []byte, start int, item string) []byte {
	if len(b) > start {
		b = append(b, ',')
	}
	return append(b, item...)
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
