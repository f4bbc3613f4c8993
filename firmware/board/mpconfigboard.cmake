# The Mizumori reference station: ESP32-WROOM-32E, 4 MiB flash, no PSRAM. The hardware of
# ESP32_GENERIC, whose settings these are; the frozen content (manifest.py) and the partition
# table (sdkconfig.board, partitions.csv: a romfs partition) differ.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
