package hostcheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo, reduced to what is used here.
type mountEntry struct {
	Point  string
	FSType string
	Super  string // super options; for cgroup v1 they name the controllers
}

func mountinfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Fields: id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		out = append(out, mountEntry{Point: unescape(a[4]), FSType: b[0], Super: b[2]})
	}
	return out, sc.Err()
}

// unescape undoes the octal escapes (\040 for space, ...) the kernel writes in
// mountinfo paths.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mountpoints lists the mount points that start with one of prefixes, in mount
// order (so a stacked mount comes after the one it covers).
func Mountpoints(prefixes ...string) ([]string, error) {
	ents, err := mountinfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if hasPrefix(e.Point, prefixes) {
			out = append(out, e.Point)
		}
	}
	return out, nil
}

// UnmountAll detaches every mount at or below dir, last mounted first, and returns
// what it unmounted. Lazy (MNT_DETACH) unmounts cannot fail on a busy mount, which
// is what a cleanup needs.
func UnmountAll(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	points, err := Mountpoints(dir)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, p := range slices.Backward(points) {
		if p != dir && !strings.HasPrefix(p, dir+"/") {
			continue // a sibling such as /tmp/x-1 for dir /tmp/x
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, &os.PathError{Op: "unmount", Path: p, Err: err})
			continue
		}
		done = append(done, p)
	}
	return done, errors.Join(errs...)
}

// CgroupDirs returns the existing directories of cgroup path in every mounted
// hierarchy (each cgroup v1 controller and the v2 tree), deepest first so that
// they can be removed in order.
func CgroupDirs(path string) ([]string, error) {
	ents, err := mountinfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.FSType != "cgroup" && e.FSType != "cgroup2" {
			continue
		}
		root := filepath.Join(e.Point, path)
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	// Deeper paths have more separators; a stable sort keeps hierarchies grouped.
	slices.SortStableFunc(out, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	return out, nil
}

// RemoveCgroups removes cgroup path and everything below it in every hierarchy,
// retrying for up to wait: the kernel frees a cgroup a moment after its last
// process is reaped.
func RemoveCgroups(path string, wait time.Duration) error {
	var errs []error
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		dirs, err := CgroupDirs(path)
		if err != nil {
			return err
		}
		errs = errs[:0]
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove cgroups: %w", errors.Join(errs...))
	}
	return nil
}
