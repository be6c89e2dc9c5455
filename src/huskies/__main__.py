from huskies.cli import app

app(prog_name="huskies")
