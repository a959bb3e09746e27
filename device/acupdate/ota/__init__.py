# acupdate.ota: ESP32 app images and the OTA slots: image checks, the slot writer, the
# otadata states, confirm and rollback.
