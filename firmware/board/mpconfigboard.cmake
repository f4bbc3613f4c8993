# The Mizumori reference station: ESP32-WROOM-32E, 4 MiB flash, no PSRAM. The hardware of
# ESP32_GENERIC, whose settings these are; only the frozen content differs (manifest.py).
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
