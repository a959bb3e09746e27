# acupdate: OTA update agent for MicroPython on ESP32, a port of AutoConnect's
# AutoConnectUpdate. Submodules are imported on demand, so that each costs heap only when
# used: config, http, catalog, imagecheck.
