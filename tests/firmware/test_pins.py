# The firmware's default pins must be the hardware's wiring.
from station.pins import PINS, SWITCHED
from support import load_json

ESP32_INPUT_ONLY = (34, 35, 36, 39)
ESP32_RTC_GPIO = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39)
ADC1 = (32, 33, 34, 35, 36, 37, 38, 39)


def test_firmware_pins_match_hardware_pinmap():
    pinmap = load_json("hardware/pinmap.json")
    assert PINS == pinmap["pins"]
    assert list(SWITCHED) == pinmap["switched_rail"]["parts"]
    assert pinmap["switched_rail"]["pin"] == "sensor_power"


def test_pin_choices_respect_the_esp32():
    gpios = [v for k, v in PINS.items() if k != "ultrasonic_uart"]
    assert len(set(gpios)) == len(gpios), "a GPIO is used twice"
    for name in ("ultrasonic_tx", "jsn_trig", "sensor_power", "i2c_scl", "i2c_sda",
                 "lora_tx", "lora_reset"):
        assert PINS[name] not in ESP32_INPUT_ONLY, name
    assert PINS["loop_adc"] in ADC1 and PINS["battery_adc"] in ADC1
    assert PINS["rain"] in ESP32_RTC_GPIO  # it must wake the chip from deep sleep
    strapping = (0, 2, 5, 12, 15)  # a level on these at reset changes how the chip boots
    assert not set(strapping) & {v for k, v in PINS.items() if k != "ultrasonic_uart"}
