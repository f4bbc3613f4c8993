# Default pin map of the reference station. hardware/pinmap.json is the source; a test fails
# when the two disagree. A station's config may override any entry under "pins".
PINS = {
    "ultrasonic_uart": 2,   # UART2 to the A02YYUW
    "ultrasonic_tx": 17,
    "ultrasonic_rx": 16,
    "jsn_trig": 26,         # JSN-SR04T alternative
    "jsn_echo": 14,         # through a 5 V -> 3.3 V divider
    "i2c_scl": 22,          # BME280
    "i2c_sda": 21,
    "loop_adc": 34,         # 4-20 mA shunt (ADC1: ADC2 is unusable while Wi-Fi runs)
    "battery_adc": 35,      # battery divider, ADC1
    "rain": 33,             # reed switch, RTC GPIO (ext0 wake source)
    "sensor_power": 25,     # load switch for the sensors, on only while awake
    "service": 27,          # service button to GND: hold at wake for the maintenance window
    "lora_uart": 1,         # UART1 to the RAK3172 LoRaWAN module (its UART2, 115200 8N1)
    "lora_tx": 19,          # ESP32 TX -> RAK3172 RX2
    "lora_rx": 18,          # ESP32 RX <- RAK3172 TX2
    "lora_reset": 32,       # -> RAK3172 NRST: held high, pulsed low to reset a hung module
}

# The parts powered from the load switch that sensor_power drives (hardware/wiring.md): they
# answer only while it is on, after their warm-up. The rain pull-up, the battery divider and
# the RAK3172 stay on the battery rail.
SWITCHED = ("a02yyuw", "jsnsr04t", "bme280", "current_loop")
