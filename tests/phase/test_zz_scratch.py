import time, json
from tests.phase.conftest import advance_to
def test_probe(desk):
    t=time.process_time()
    desk.trades(*([30,30,-20]*40), per_session=3)
    print("120 trades", time.process_time()-t)
    t=time.process_time()
    advance_to(desk, "proof")
    desk.edit_config({("phase_progression","proof","max_trades_per_day"): None})
    print("adv", time.process_time()-t)
    t=time.process_time()
    desk.trades(*([30,30,-20]*20))
    print("60 trades", time.process_time()-t)
    code, out = desk.cli_json("validate-transition","--to","trial")
    print(code, json.dumps(out, indent=1))
