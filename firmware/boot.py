# Runs first at every reset. Tiny on purpose and never updated over the air.
import gc

gc.collect()
