"""The step cache's engine: digests, keys, traces of what a step did, entries and the store on disk.

``@pipeline_step(cache=True)`` marks a step whose calls
:class:`~pytest_crystallize.plugins.cache.CachePlugin` may keep and replay.
Its modules, one concept each:

- :mod:`.digests`: content digests of values, stable across processes and machines;
- :mod:`.code`: fingerprints of a step's code and the user code it reaches;
- :mod:`.keys`: the call key and read sets of a step call;
- :mod:`.trace`: what a call read and did, and replaying it on a hit;
- :mod:`.codec`: storing values as JSON, ``.npy`` and Arrow, pickle only where needed;
- :mod:`.secret`: the local secret that signs pickles;
- :mod:`.entries`: one entry file, written atomically and checked before use;
- :mod:`.store`: the cache directory, its size limit and least-recently-used eviction.
"""
