# Simplify a problem step by step, then measure the model.
mathy simplify "4x + 2x + 7y^2 + y^2" --model output/my_agent || echo "not simplified"
mathy evaluate output/my_agent --problems 50
mathy problems poly --difficulty normal --number 3
