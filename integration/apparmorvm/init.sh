#!/bin/busybox sh
# /init of the AppArmor test VM (see build.sh and integration/apparmor_vm_test.go).
#
# Stage 1 runs on the initramfs and only moves it to a tmpfs: runc and runsc
# pivot_root into container filesystems, and pivot_root fails while / is the
# initial rootfs (it can never be unmounted). Stage 2 mounts what containerd
# and the runtimes need, runs checks.sh and powers off. Results go to the
# console (the serial port), which the host reads; nothing else is printed
# there except lines starting with "#".
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ "$1" != stage2 ]; then
	mount -t proc proc /proc
	echo "# initramfs /init at $(cut -d' ' -f1 /proc/uptime)s"
	umount /proc
	mount -t tmpfs -o mode=0755 tmpfs /newroot
	for e in /*; do
		case $e in
		/newroot | /proc | /sys | /dev) mkdir -p "/newroot$e" ;;
		*) cp -a "$e" /newroot/ ;;
		esac
	done
	# switch_root empties the initramfs (freeing its memory) and execs stage 2 as PID 1.
	exec switch_root /newroot /init stage2
	echo "FAIL boot: switch_root failed"
	poweroff -f
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# AppArmor's interface (profiles, and where apparmor_parser loads them). With
# apparmor=0 the kernel has no apparmor directory in it, which is the point.
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
# Without auditd, AppArmor's audit records reach the kernel log through
# printk_ratelimit(); the checks read denials there and must not lose one.
echo 0 >/proc/sys/kernel/printk_ratelimit

echo "# guest up at $(cut -d' ' -f1 /proc/uptime)s: $(uname -r), cmdline: $(cat /proc/cmdline)"
. /checks.sh
main
echo "# guest done at $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
