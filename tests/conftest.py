"""The suite reads captures without the Parquet cache (tcpsift.cache), so that every test
decodes what it checks and nothing is written to the user's cache folder; tests of the
cache give it a folder of their own."""
import os

os.environ["TCPSIFT_CACHE"] = "off"
