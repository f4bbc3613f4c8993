# Runs after boot.py at every wake; never updated over the air. The application lives in the
# slot boot.py chose. If it raises (a broken update), note why and sleep: on a trial slot
# every such boot counts towards boot.py's rollback, and a board never sits awake at the REPL.
try:
    from station import app

    app.main()
except Exception as e:
    import sys

    with open("crash.txt", "w") as f:
        sys.print_exception(e, f)
    sys.print_exception(e)
    import machine

    machine.deepsleep(60000)
