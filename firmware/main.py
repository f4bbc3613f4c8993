# Runs after boot.py at every wake. Kept to one line: the application lives in station/.
from station import app

app.main()
