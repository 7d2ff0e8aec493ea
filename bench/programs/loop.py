# The python3 program of the image-size benchmark: says ready, then sleeps
# 100 ms at a time forever.
import time

print("ready", flush=True)
while True:
    time.sleep(0.1)
