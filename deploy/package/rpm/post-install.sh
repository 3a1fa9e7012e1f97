# A first install ($1 = 1) makes /etc/session-exporter the group's only (it holds the
# configuration and password files); an operator's later change is kept.
if [ "$1" -eq 1 ]; then
    chgrp session-exporter /etc/session-exporter
    chmod 0750 /etc/session-exporter
fi
# The session history's store (history.path in config.yaml): the service's own, as
# systemd's StateDirectory= makes it, for a host that runs it without.
install -d -m 0750 -o session-exporter -g session-exporter /var/lib/session-exporter
# As %systemd_post: on a first install ($1 = 1) the unit follows the system's preset
# (disabled on RHEL-family hosts unless a preset enables it); upgrades keep the state.
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl --no-reload preset session-exporter.service >/dev/null 2>&1 || :
fi
