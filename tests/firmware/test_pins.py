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


def test_i2c_parts_have_distinct_addresses_that_the_firmware_uses():
    from station.drivers import ads1115
    from station.hw import sim, sim_bme280

    i2c = load_json("hardware/pinmap.json")["i2c"]
    assert i2c["ads1115"] != i2c["bme280"]
    assert i2c["ads1115"] == ads1115.ADDR_GND == sim.ADS1115_ADDR
    assert i2c["bme280"] == sim_bme280.SimBME280I2C(sim.World()).addr


def test_the_jsn_sr04t_echo_reaches_the_esp32s_input_high_threshold():
    # ESP32 datasheet, DC characteristics: V_IH min = 0.75 x VDD; inputs to VDD + 0.3 V.
    vdd = 3.3
    echo = load_json("hardware/pinmap.json")["logic_levels"]["jsn_echo"]
    high = echo["high_v"]
    if "divider" in echo:  # a resistive divider scales the module's supply
        top, bottom = echo["divider"]
        high = echo["source_v"] * bottom / (top + bottom)
    assert 0.75 * vdd <= high <= vdd + 0.3
    # the divider alone fails when the module runs from the 3.3 V rail: 2.2 V
    assert 3.3 * 20000 / 30000 < 0.75 * vdd
