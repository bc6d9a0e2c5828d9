"""`python -m pipeline`. The collector is paused while Beam and the clients are imported: hundreds of thousands of
objects that live until exit, nothing to collect (run() turns it back on)."""
import gc

gc.disable()

from pipeline.main import main  # noqa: E402 - after pausing the collector, on purpose

main()
