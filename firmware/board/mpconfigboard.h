// The Mizumori reference station: ESP32-WROOM-32E, 4 MiB flash, no PSRAM.
// os.uname().machine reads "Mizumori station with ESP32": `mizumori device check` shows it,
// which tells this image from the stock ESP32_GENERIC ("Generic ESP32 module with ESP32").
#define MICROPY_HW_BOARD_NAME "Mizumori station"
#define MICROPY_HW_MCU_NAME "ESP32"
// ROMFS (MicroPython's ESP32_GENERIC ROMFS variant does the same): the "romfs" partition of
// partitions.csv mounted at /rom, .mpy files in it run in place from flash. boot.py copies
// the running slot's code image into it (docs/firmware.md, "Code in flash (ROMFS)").
#define MICROPY_VFS_ROM (1)
