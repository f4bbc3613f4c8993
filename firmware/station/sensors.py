# Builds the station's sensors from its config and pin map on a given board.
from station.drivers.a02yyuw import A02YYUW
from station.drivers.battery import Battery
from station.drivers.bme280 import BME280
from station.drivers.current_loop import CurrentLoop
from station.drivers.jsnsr04t import JSNSR04T
from station.drivers.rain import RainGauge


def level_sensor(board, cfg, pins):
    """(kind, sensor): kind "distance" for ultrasonic, "depth" for a pressure transducer."""
    name = cfg["level_sensor"]
    if name == "a02yyuw":
        uart = board.uart(pins["ultrasonic_uart"], 9600, pins["ultrasonic_tx"],
                          pins["ultrasonic_rx"])
        return "distance", A02YYUW(uart)
    if name == "jsnsr04t":
        return "distance", JSNSR04T(board.pin_out(pins["jsn_trig"]),
                                    board.pin_in(pins["jsn_echo"]),
                                    board.time_pulse_us, board.sleep_us)
    return "depth", CurrentLoop(board.adc(pins["loop_adc"]), cfg["loop_shunt_ohm"],
                                cfg["loop_zero_ua"], cfg["loop_span_mm"])


def env_sensor(board, pins):
    return BME280(board.i2c(pins["i2c_scl"], pins["i2c_sda"]))


def battery(board, cfg, pins):
    num, den = cfg["battery_ratio"]
    return Battery(board.adc(pins["battery_adc"]), num, den)


def rain_gauge(board, pins):
    return RainGauge(board.pin_in(pins["rain"], pull_up=True), board.IRQ_FALLING)
