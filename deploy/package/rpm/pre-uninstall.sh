# As %systemd_preun: erasing the package ($1 = 0) stops and disables the service.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now session-exporter.service >/dev/null 2>&1 || :
fi
