#!/bin/sh
# The test dom0's init, run as PID 1 from the job share (see stub-init):
# bring up what libxl needs without systemd (xenstored, xen-init-dom0,
# xenconsoled logging every guest console), run the job, power off.
# Everything it prints goes to hvc0, which QEMU writes to the serial log.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
JOB=/job
XENBIN=/usr/lib/xen-4.17/bin

step() { echo "dom0-init: $*"; }

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -o remount,rw /
# The project as built from the checkout (prepare.py's layer image).
mount -o ro /dev/vdb /usr/local || step "cannot mount the project layer"
hostname dom0

for module in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback \
              loop virtio_net; do
    modprobe "$module" || step "modprobe $module failed"
done
mount -t xenfs xenfs /proc/xen

mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xen/images
step "starting xenstored"
"$XENBIN/oxenstored" --pid-file=/run/xenstored.pid || step "xenstored failed"
"$XENBIN/xen-init-dom0" || step "xen-init-dom0 failed"
"$XENBIN/xenconsoled" --pid-file=/run/xenconsoled.pid --log=all --log-dir=/var/log/xen/console \
    || step "xenconsoled failed"

# QEMU's user-mode network: the host's loopback is 10.0.2.2 from here.
ip link set lo up
for path in /sys/class/net/*; do
    nic=${path##*/}
    [ "$nic" = lo ] && continue
    ip link set "$nic" up && ip addr add 10.0.2.15/24 dev "$nic" && break
done

step "running the job"
python3 "$JOB/dom0/runner.py" "$JOB"
step "job finished ($?)"
sync
# No systemd, no poweroff: ask the kernel directly (ACPI S5 through Xen ends QEMU).
echo 1 > /proc/sys/kernel/sysrq
echo o > /proc/sysrq-trigger
while :; do sleep 60; done  # PID 1 must not exit; the host ends QEMU in any case
