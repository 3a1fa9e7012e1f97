# As %systemd_postun_with_restart: an upgrade ($1 >= 1) restarts a running service on
# the new binary. Erasing ($1 = 0) also removes /etc/session-exporter when empty, the
# session history's store (/var/lib/session-exporter), and the user and group the
# package made: they own no files once these are gone.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart session-exporter.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    rmdir /etc/session-exporter 2>/dev/null || :
    rm -rf /var/lib/session-exporter
    if getent passwd session-exporter >/dev/null; then
        userdel session-exporter || :
    fi
    if getent group session-exporter >/dev/null; then
        groupdel session-exporter || :
    fi
fi
