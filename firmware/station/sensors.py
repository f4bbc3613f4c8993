# Builds the station's sensors from its config and pin map on a given board, and powers them:
# the parts in pins.SWITCHED hang off a load switch that sensor_power drives.
# Each driver is imported by the function that builds it, so a wake loads only the parts this
# station has fitted (one level sensor of three; the BME280 only when env_sensor): a driver's
# code sits in the heap for the rest of the wake (docs/firmware.md, RAM budget).

# How long each part needs after the rail comes on before it answers, ms: BME280 start-up 2 ms
# (Bosch datasheet, t_startup); A02YYUW one measurement cycle, 100-300 ms (DFRobot SEN0311);
# JSN-SR04T about 100 ms; a 4-20 mA transmitter behind its boost converter up to 500 ms.
WARMUP_MS = {"bme280": 2, "a02yyuw": 300, "jsnsr04t": 100, "current_loop": 500}


def rail_on(board, cfg, pins, nap=None):
    """Switch the sensor rail on and wait until the fitted parts have warmed up, in light
    sleep (nap: the rain gauge's, which counts tips meanwhile; else board.lightsleep): no
    bus is open yet, so nothing is lost while the UARTs' clock is gated, and the rail's
    enable pin keeps its level (sample_window sleeps with the rail on too)."""
    board.pin_out(pins["sensor_power"], 1)
    fitted = [cfg["level_sensor"]] + (["bme280"] if cfg["env_sensor"] else [])
    (nap or board.lightsleep)(max(WARMUP_MS.get(p, 0) for p in fitted))


def rail_off(board, pins):
    """Switch the sensor rail off: it must be off in deep sleep (a battery drain)."""
    board.pin_out(pins["sensor_power"], 0)


def level_sensor(board, cfg, pins):
    """(kind, sensor): kind "distance" for ultrasonic, "depth" for a pressure transducer."""
    name = cfg["level_sensor"]
    if name == "a02yyuw":
        from station.drivers.a02yyuw import A02YYUW

        uart = board.uart(pins["ultrasonic_uart"], 9600, pins["ultrasonic_tx"],
                          pins["ultrasonic_rx"])
        return "distance", A02YYUW(uart, clock=board)
    if name == "jsnsr04t":
        from station.drivers.jsnsr04t import JSNSR04T

        return "distance", JSNSR04T(board.pin_out(pins["jsn_trig"]),
                                    board.pin_in(pins["jsn_echo"]),
                                    board.time_pulse_us, board.sleep_us, clock=board)
    from station.drivers.current_loop import SAMPLES, CurrentLoop

    converter = cfg.get("loop_converter", "internal")
    if converter == "ads1115":  # the recommended path (hardware/wiring.md)
        from station.drivers.ads1115 import ADS1115

        adc = ADS1115(board.i2c(pins["i2c_scl"], pins["i2c_sda"]), clock=board)
    else:
        adc = board.adc(pins["loop_adc"])
    return "depth", CurrentLoop(adc, cfg["loop_shunt_ohm"], cfg["loop_zero_ua"],
                                cfg["loop_span_mm"], SAMPLES[converter])


def env_sensor(board, pins):
    from station.drivers.bme280 import BME280

    return BME280(board.i2c(pins["i2c_scl"], pins["i2c_sda"]), clock=board)


def battery(board, cfg, pins):
    from station.drivers.battery import Battery

    num, den = cfg["battery_ratio"]
    return Battery(board.adc(pins["battery_adc"]), num, den)


def rain_gauge(board, pins):
    from station.drivers.rain import RainGauge

    return RainGauge(board, pins["rain"])


def rain_counter(board, pins):
    """The PCF8583 that counts the tips on the always-on rail (config rain_counter). The bus's
    pull-ups are on the switched rail: it must be on to read it."""
    from station.drivers.pcf8583 import PCF8583

    return PCF8583(board.i2c(pins["i2c_scl"], pins["i2c_sda"]))
