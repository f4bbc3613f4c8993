// The Mizumori reference station: ESP32-WROOM-32E, 4 MiB flash, no PSRAM.
// os.uname().machine reads "Mizumori station with ESP32": `mizumori device check` shows it,
// which tells this image from the stock ESP32_GENERIC ("Generic ESP32 module with ESP32").
#define MICROPY_HW_BOARD_NAME "Mizumori station"
#define MICROPY_HW_MCU_NAME "ESP32"
